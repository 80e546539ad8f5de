"""Data in and out of a campaign: import (CSV, Parquet, JSON lines; upsert by key) and export (CSV,
Parquet)."""

from engine.io.exporter import ExportReport, export_campaign, frame_to_csv
from engine.io.importer import ImportedFile, ImportOptions, import_file

__all__ = ["ExportReport", "ImportOptions", "ImportedFile", "export_campaign", "frame_to_csv", "import_file"]
