"""Synthesis at scale: shards of samples written atomically, resumed, merged into a labelled dataset."""
