"""File formats and safe writing: every artifact nph writes goes through here."""
