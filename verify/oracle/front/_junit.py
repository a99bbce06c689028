"""A Report as JUnit XML (``python -m verify check SPEC --junit-xml PATH``), for CI systems that
read JUnit and do not run pytest.

One ``<testcase>`` per check, named like the pytest plugin's items (``grad_w[float32]``), in one
``<testsuite>``; a failed check carries its finding as the ``<failure>``'s one-line message and
the report's lines (diagnosis, minimal counterexample, reproducer) as its text; a skipped one
says what it needs. The layout is the common subset that pytest's ``--junitxml`` writes and
Jenkins, GitLab and GitHub Actions read::

    <testsuites name="crosscheck" tests= failures= errors="0" skipped= time=>
      <testsuite name="crosscheck" ... timestamp= hostname=>
        <properties><property name="dtype" value="float32"/>...</properties>
        <testcase classname="crosscheck.SPEC" name="grad_w[float32]" time="0.81">
          <failure message="transposed - dL_dw has shape ..." type="transposed">...</failure>
"""

from __future__ import annotations

import datetime
import re
import socket
import textwrap
import xml.etree.ElementTree as ET

from ._report import FunctionReport, Report

#: Characters XML 1.0 cannot hold at all (a candidate's traceback may carry any of them).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids written as ``\\xNN`` (or ``\\uNNNN``)."""
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def mode(dtype: str, exact: bool) -> str:
    """The dtype, ``-exact`` in exact mode: the bracket of a test case's name."""
    return f"{dtype}-exact" if exact else dtype


def case_name(function: str, mode: str) -> str:
    """``grad_w[float32]``: a check's test-case name, here and in the pytest plugin."""
    return f"{function}[{mode}]"


def _testcase(report: Report, verdict: FunctionReport) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=xml_text(f"crosscheck.{report.implementation}"),
        name=case_name(verdict.function, mode(report.settings.dtype, report.settings.exact)),
        time=f"{verdict.seconds or 0.0:.3f}",
    )
    if verdict.status == "skip":
        ET.SubElement(case, "skipped", message=xml_text(verdict.note or "not applicable"))
    elif verdict.status == "fail":
        failure = ET.SubElement(
            case,
            "failure",
            message=xml_text(verdict.headline()),
            type=str(verdict.diagnosis or "failure"),
        )
        failure.text = xml_text(textwrap.dedent("\n".join(verdict.lines())))
    return case


def junit_xml(report: Report) -> str:
    """The JUnit XML document of ``report`` (UTF-8 text with its declaration)."""
    counts = {
        "tests": str(len(report.functions)),
        "failures": str(len(report.failures)),
        "errors": "0",
        "skipped": str(sum(f.status == "skip" for f in report.functions)),
        "time": f"{sum(f.seconds or 0.0 for f in report.functions):.3f}",
    }
    suites = ET.Element("testsuites", {"name": "crosscheck", **counts})
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    suite = ET.SubElement(
        suites,
        "testsuite",
        {"name": "crosscheck", **counts, "timestamp": when, "hostname": socket.gethostname()},
    )
    properties = ET.SubElement(suite, "properties")
    settings = {
        "implementation": report.implementation,
        **report.settings.described(),
        "max_examples": report.settings.max_examples,
        "seed": report.settings.seed,
        "isolated": report.isolated,
    }
    for key, value in settings.items():
        ET.SubElement(properties, "property", name=key, value=xml_text(str(value)))
    suite.extend(_testcase(report, verdict) for verdict in report.functions)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
