"""Data in and out of a campaign: import (CSV, Parquet, JSON lines; upsert by key: importer.py) and export (CSV,
Parquet: exporter.py). Nothing is imported here, so that an export loads neither the importer nor the spec's
parser (`runsheet export` is a whole process: issue 16)."""
