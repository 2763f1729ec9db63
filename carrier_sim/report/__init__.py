"""What a run leaves behind: the JSON report (docs/report.md) and the JUnit XML rendered from it."""

from carrier_sim.report.json_report import (
    SCHEMA_VERSION,
    build_report,
    dumps_report,
    tag_sessions,
    validate_report,
    write_report,
)
from carrier_sim.report.junit import junit_element, junit_xml, write_junit

__all__ = [
    "SCHEMA_VERSION",
    "build_report",
    "dumps_report",
    "junit_element",
    "junit_xml",
    "tag_sessions",
    "validate_report",
    "write_junit",
    "write_report",
]
