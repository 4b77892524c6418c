"""The data layer: label table, measurements, labelled dataset folders, ingestion and phantoms."""
