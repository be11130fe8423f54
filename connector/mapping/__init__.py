"""Admin-editable field mappings (`mappings/*.toml`): Salesforce records to engine values and back."""
from connector.mapping.apply import MappingError, UnresolvedReference, read_record, write_record
from connector.mapping.command import validate_command
from connector.mapping.loader import MappingSet, load_mappings
from connector.mapping.schema import FieldSpec, MappingFile, ObjectMapping
from connector.mapping.validate import validate_online

__all__ = [
    "FieldSpec", "MappingError", "MappingFile", "MappingSet", "ObjectMapping", "UnresolvedReference",
    "load_mappings", "read_record", "validate_command", "validate_online", "write_record",
]
