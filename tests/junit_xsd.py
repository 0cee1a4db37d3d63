"""junit.xml against Jenkins' junit-10.xsd (jenkinsci/xunit-plugin, MIT; a copy in
tests/data, as CI runs on a clean clone).

`strict`: the schema as it is, for `--junit-strict` output.  Otherwise the schema
plus `<properties>` in a `<testcase>`, the one thing the default output adds
(pytest writes it there, Jenkins' `keepProperties` reads it there).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
XS = "http://www.w3.org/2001/XMLSchema"


@cache
def schema(strict: bool) -> etree.XMLSchema:
    """junit-10.xsd, or (not `strict`) with `properties` among a testcase's children."""
    doc = etree.parse(str(XSD))
    if not strict:
        (choice,) = doc.xpath("/xs:schema/xs:element[@name='testcase']//xs:choice",
                              namespaces={"xs": XS})
        etree.SubElement(choice, f"{{{XS}}}element", ref="properties")
    return etree.XMLSchema(doc)


def validate(file: Path, strict: bool = False) -> None:
    """Assert that `file` is valid; the schema's complaints are the message."""
    checker = schema(strict)
    assert checker.validate(etree.parse(str(file))), str(checker.error_log)
