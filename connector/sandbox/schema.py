"""The sandbox org's schema: standard objects from ``standard_objects.json``, custom objects and
fields from the Salesforce DX source in ``salesforce/force-app`` (the same files the CLI deploys).

Describe output is rendered with every key the recorded ``describe-Opportunity.json`` and
``describe-global-trimmed.json`` samples carry, so clients see Salesforce's shapes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from defusedxml import ElementTree

from .ids import base62

_MD = "{http://soap.sforce.com/2006/04/metadata}"

#: describe ``soapType`` per field type (SOAP API "Field Types" / describeSObjects FieldType)
SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "string": "xsd:string",
    "textarea": "xsd:string", "picklist": "xsd:string", "email": "xsd:string", "phone": "xsd:string",
    "url": "xsd:string", "currency": "xsd:double", "double": "xsd:double", "percent": "xsd:double",
    "int": "xsd:int", "date": "xsd:date", "datetime": "xsd:dateTime",
}
#: Metadata API CustomField type -> describe field type
_MD_TYPES = {
    "Text": "string", "Number": "double", "Currency": "currency", "Date": "date", "DateTime": "datetime",
    "Lookup": "reference", "Picklist": "picklist", "Checkbox": "boolean", "Percent": "percent",
    "Email": "email", "Phone": "phone", "Url": "url", "TextArea": "textarea", "LongTextArea": "textarea",
}


@dataclass
class FieldDef:
    """One field of an object, with the properties the sandbox enforces and describes."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    picklist_values: list[str] = field(default_factory=list)
    restricted_picklist: bool = False
    required: bool = False
    createable: bool = True
    updateable: bool = True
    calculated: bool = False
    auto_number: bool = False
    external_id: bool = False
    unique: bool = False
    name_field: bool = False
    default_value: object = None
    custom: bool = False
    #: custom lookups: the child relationship name from the metadata's <relationshipName> (e.g. Subscriptions)
    child_relationship: str | None = None

    @property
    def is_id_like(self) -> bool:
        """True for fields holding record Ids (``id`` and lookups)."""
        return self.type in ("id", "reference")

    def describe(self) -> dict:
        """This field in Salesforce describe shape (every key of the recorded sample)."""
        nillable = not self.required and self.type not in ("id", "boolean")
        byte_length = self.length * 3 if self.type in ("string", "textarea", "picklist", "email", "phone", "url") else 0
        if self.is_id_like:
            byte_length = 18
        return {
            "aggregatable": self.type not in ("textarea",),
            "aiPredictionField": False,
            "autoNumber": self.auto_number,
            "byteLength": byte_length,
            "calculated": self.calculated,
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "compoundFieldName": None,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.type in ("id", "boolean") or self.default_value is not None
            or self.auto_number or not self.createable and self.name in ("CreatedDate", "SystemModstamp",
                                                                         "LastModifiedDate", "CreatedById",
                                                                         "LastModifiedById", "IsDeleted"),
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.digits,
            "displayLocationInDecimal": False,
            "encrypted": False,
            "externalId": self.external_id,
            "extraTypeInfo": None,
            "filterable": self.type != "textarea",
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": self.type not in ("double", "currency", "percent", "datetime", "textarea"),
            "highScaleNumber": False,
            "htmlFormatted": False,
            "idLookup": self.type == "id" or self.external_id or self.name_field and not self.calculated,
            "inlineHelpText": None,
            "label": self.label or self.name,
            "length": self.length if self.type not in ("id", "reference") else 18,
            "mask": None,
            "maskType": None,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": self.name == "OwnerId",
            "nillable": nillable,
            "permissionable": nillable and not self.calculated and self.createable,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default_value, "label": v, "validFor": None, "value": v}
                for v in self.picklist_values
            ],
            "polymorphicForeignKey": False,
            "precision": self.precision,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "restrictedDelete": False,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "searchPrefilterable": False,
            "soapType": SOAP_TYPES[self.type],
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": False,
        }


@dataclass
class ObjectDef:
    """One sObject type: its fields (by lower-cased name), key prefix and capabilities."""

    name: str
    label: str
    label_plural: str
    key_prefix: str | None
    custom: bool
    fields: dict[str, FieldDef]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    #: big objects: the index field names, in index order
    index: list[str] = field(default_factory=list)

    @property
    def is_big(self) -> bool:
        """True for a big object (``__b``): no Id, inserts upsert on the index."""
        return self.name.endswith("__b")

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (case-insensitive, as SOQL and the REST API are)."""
        return self.fields.get(name.lower())

    def by_relationship(self, rel: str) -> FieldDef | None:
        """The lookup field whose relationship name is ``rel`` (case-insensitive)."""
        rel = rel.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == rel:
                return f
        return None

    def external_id_fields(self) -> list[FieldDef]:
        """Fields usable as the key of an upsert."""
        return [f for f in self.fields.values() if f.external_id or f.type == "id"]

    def urls(self, version: str) -> dict:
        """The ``urls`` map of a describe, for API version ``version`` (e.g. ``"60.0"``)."""
        base = f"/services/data/v{version}/sobjects/{self.name}"
        if self.is_big:
            return {"rowTemplate": base + "/{ID}", "describe": base + "/describe", "sobject": base}
        return {
            "compactLayouts": base + "/describe/compactLayouts", "rowTemplate": base + "/{ID}",
            "approvalLayouts": base + "/describe/approvalLayouts", "listviews": base + "/listviews",
            "describe": base + "/describe", "quickActions": base + "/quickActions",
            "layouts": base + "/describe/layouts", "sobject": base,
        }

    def global_entry(self, version: str) -> dict:
        """This object's entry in ``GET /sobjects`` (keys as in the recorded global describe)."""
        big = self.is_big
        return {
            "activateable": False, "associateEntityType": None, "associateParentEntity": None,
            "createable": self.createable, "custom": self.custom, "customSetting": False,
            "deepCloneable": False, "deletable": self.deletable and not big, "deprecatedAndHidden": False,
            "feedEnabled": False, "hasSubtypes": False, "isInterface": False, "isSubtype": False,
            "keyPrefix": self.key_prefix, "label": self.label, "labelPlural": self.label_plural,
            "layoutable": not big, "mergeable": self.name == "Account", "mruEnabled": not big,
            "name": self.name, "queryable": True, "replicateable": not big, "retrieveable": not big,
            "searchable": not big, "triggerable": not big, "undeletable": not big and self.deletable,
            "updateable": self.updateable and not big, "urls": self.urls(version),
        }

    def describe(self, version: str, schema: "Schema") -> dict:
        """The full ``GET /sobjects/{name}/describe`` body (keys as in the recorded sample)."""
        entry = self.global_entry(version)
        children = []
        for other in schema.objects.values():
            for f in other.fields.values():
                if f.type == "reference" and self.name in f.reference_to and not other.is_big:
                    children.append({
                        "cascadeDelete": False, "childSObject": other.name, "deprecatedAndHidden": False,
                        "field": f.name, "junctionIdListNames": [], "junctionReferenceTo": [],
                        "relationshipName": _child_relationship(other, f), "restrictedDelete": False,
                    })
        body = dict(entry)
        body.update({
            "actionOverrides": [], "childRelationships": children, "compactLayoutable": not self.is_big,
            "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None,
            "fields": [f.describe() for f in self.fields.values()], "implementedBy": None,
            "implementsInterfaces": None, "listviewable": None, "lookupLayoutable": None,
            "namedLayoutInfos": [], "networkScopeFieldName": None,
            "recordTypeInfos": [] if self.is_big else [{
                "active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
                "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
                "urls": {"layout": f"/services/data/v{version}/sobjects/{self.name}/describe/layouts/012000000000000AAA"},
            }],
            "searchLayoutable": not self.is_big, "sobjectDescribeOption": "FULL", "supportedScopes": [],
        })
        return dict(sorted(body.items()))


def _child_relationship(child: ObjectDef, f: FieldDef) -> str | None:
    # Standard child relationships are the plural label without spaces (Opportunities, OrderItems);
    # custom lookups carry their own relationshipName (Subscriptions -> Subscriptions__r).
    if f.custom:
        return (f.child_relationship or child.name.removesuffix("__c")) + "__r"
    if f.name in ("CreatedById", "LastModifiedById", "OwnerId", "ActivatedById"):
        return None
    return child.label_plural.replace(" ", "") if f.name != "ParentId" else "ChildAccounts"


@dataclass
class Schema:
    """Every sObject type the sandbox org knows, by lower-cased name."""

    objects: dict[str, ObjectDef]

    def get(self, name: str) -> ObjectDef | None:
        """The object called ``name`` (case-insensitive), or None."""
        return self.objects.get(name.lower())


def default_metadata_dir() -> Path:
    """The repository's ``salesforce/`` DX project (next to the ``connector`` package)."""
    return Path(__file__).resolve().parents[2] / "salesforce"


def load_schema(metadata_dir: Path | str | None = None, *, multi_currency: bool = False) -> Schema:
    """Build the schema: standard objects from the JSON, then custom objects and fields from DX source."""
    raw = json.loads(resources.files(__package__).joinpath("standard_objects.json").read_text("utf-8"))
    objects: dict[str, ObjectDef] = {}
    for name, spec in raw["objects"].items():
        fields: dict[str, FieldDef] = {}
        system = {k: v for k, v in raw["systemFields"].items() if k not in spec.get("omitSystemFields", [])}
        ordered = {"Id": system.pop("Id"), **spec["fields"], **system}
        if multi_currency and spec.get("multiCurrency"):
            ordered.update(raw["multiCurrencyFields"])
        for fname, fspec in ordered.items():
            fields[fname.lower()] = _field_from_json(fname, fspec)
        objects[name.lower()] = ObjectDef(
            name=name, label=spec["label"], label_plural=spec["labelPlural"], key_prefix=spec["keyPrefix"],
            custom=False, fields=fields, createable=spec.get("createable", True),
            updateable=spec.get("updateable", True), deletable=spec.get("deletable", True),
        )
    root = Path(metadata_dir) if metadata_dir is not None else default_metadata_dir()
    objects_dir = root / "force-app" / "main" / "default" / "objects"
    if not objects_dir.is_dir():
        raise FileNotFoundError(
            f"no Salesforce DX objects at {objects_dir}; pass metadata_dir= pointing at the repository's salesforce/ folder"
        )
    custom_objects = sorted(p for p in objects_dir.iterdir() if p.is_dir() and p.name.endswith(("__c", "__b")))
    prefix_counter = 0
    for path in custom_objects:
        meta = _xml(path / f"{path.name}.object-meta.xml")
        is_big = path.name.endswith("__b")
        fields = {}
        system = {k: v for k, v in raw["systemFields"].items()}
        if not is_big:
            prefix_counter += 1
            fields["id"] = _field_from_json("Id", system.pop("Id"))
            name_field = meta.find(f"{_MD}nameField")
            auto = name_field is not None and _text(name_field, "type") == "AutoNumber"
            fields["name"] = FieldDef(
                name="Name", type="string", label=_text(name_field, "label") or "Name", length=80,
                required=not auto, createable=not auto, updateable=not auto, auto_number=auto, name_field=True,
            )
            fields["ownerid"] = _field_from_json("OwnerId", {"type": "reference", "referenceTo": ["User"],
                                                             "relationshipName": "Owner"})
        objects[path.name.lower()] = ObjectDef(
            name=path.name, label=_text(meta, "label") or path.name, label_plural=_text(meta, "pluralLabel") or path.name,
            # Salesforce assigns custom objects a generated prefix such as a0X; ours are a01, a02, ...
            key_prefix=None if is_big else "a" + base62(prefix_counter, 2), custom=True, fields=fields,
        )
        if not is_big:
            for fname, fspec in system.items():
                fields[fname.lower()] = _field_from_json(fname, fspec)
            if multi_currency:
                fields["currencyisocode"] = _field_from_json("CurrencyIsoCode", raw["multiCurrencyFields"]["CurrencyIsoCode"])
        for idx_file in sorted((path / "indexes").glob("*.index-meta.xml")):
            idx = _xml(idx_file)
            objects[path.name.lower()].index = [_text(f, "name") for f in idx.findall(f"{_MD}fields")]
    for path in sorted(p for p in objects_dir.iterdir() if p.is_dir()):
        target = objects.get(path.name.lower())
        if target is None:
            raise ValueError(f"DX metadata has fields for {path.name}, which the sandbox does not know")
        for ffile in sorted((path / "fields").glob("*.field-meta.xml")):
            f = _field_from_xml(_xml(ffile))
            target.fields[f.name.lower()] = f
    for obj in objects.values():
        if obj.is_big:
            missing = [n for n in obj.index if not (obj.field(n) and obj.field(n).required)]
            if not obj.index or missing:
                raise ValueError(f"big object {obj.name}: index fields must exist and be required ({missing})")
    return Schema(objects)


def _xml(path: Path):
    return ElementTree.parse(str(path)).getroot()


def _text(el, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(f"{_MD}{tag}")
    return child.text if child is not None else None


def _field_from_json(name: str, spec: dict) -> FieldDef:
    required = spec.get("required", False)
    return FieldDef(
        name=name, type=spec["type"], label=spec.get("label", name), length=spec.get("length", 0),
        precision=spec.get("precision", 0), scale=spec.get("scale", 0), digits=spec.get("digits", 0),
        reference_to=spec.get("referenceTo", []), relationship_name=spec.get("relationshipName"),
        picklist_values=spec.get("picklistValues", []), restricted_picklist=False, required=required,
        createable=spec.get("createable", True), updateable=spec.get("updateable", True),
        calculated=spec.get("calculated", False), auto_number=spec.get("autoNumber", False),
        external_id=spec.get("externalId", False), unique=spec.get("unique", False),
        name_field=spec.get("nameField", False), default_value=spec.get("defaultValue"),
    )


def _field_from_xml(el) -> FieldDef:
    md_type = _text(el, "type")
    ftype = _MD_TYPES[md_type]
    precision = int(_text(el, "precision") or 0)
    scale = int(_text(el, "scale") or 0)
    values = []
    restricted = False
    value_set = el.find(f"{_MD}valueSet")
    if value_set is not None:
        restricted = (_text(value_set, "restricted") or "false") == "true"
        definition = value_set.find(f"{_MD}valueSetDefinition")
        values = [_text(v, "fullName") for v in definition.findall(f"{_MD}value")]
    ref = _text(el, "referenceTo")
    rel = _text(el, "relationshipName")
    return FieldDef(
        name=_text(el, "fullName"), type=ftype, label=_text(el, "label") or "",
        length=int(_text(el, "length") or (18 if ftype == "reference" else 255 if ftype == "picklist" else 0)),
        precision=precision, scale=scale,
        # A custom lookup's parent relationship is the field name with __r; <relationshipName> names the
        # child relationship seen from the parent (Object Reference, "Relationships among objects").
        reference_to=[ref] if ref else [],
        relationship_name=_text(el, "fullName").removesuffix("__c") + "__r" if ref else None,
        child_relationship=rel,
        picklist_values=values, restricted_picklist=restricted,
        required=(_text(el, "required") or "false") == "true",
        external_id=(_text(el, "externalId") or "false") == "true",
        unique=(_text(el, "unique") or "false") == "true", custom=True,
    )
