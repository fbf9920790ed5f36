"""Paris, the council's case system: its CSV and XML exports of case status and interviews."""

from adapters.paris.columns import COLUMNS, Column, RecordType
from adapters.paris.csv_export import ParisCsvAdapter
from adapters.paris.xml_export import ParisXmlAdapter

__all__ = ["COLUMNS", "Column", "ParisCsvAdapter", "ParisXmlAdapter", "RecordType"]
