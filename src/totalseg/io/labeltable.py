"""The reference tool's multilabel label table: a Caret-style XML NIfTI header extension (code 0).

Files written here carry the same XML form as TotalSegmentator's `--ml` output, so they are
interchangeable both ways: its readers understand ours and `parse_label_table` reads theirs.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from totalseg.errors import InputError

__all__ = ["label_table_xml", "parse_label_table", "read_class_map_file"]

# The reference tool's 12-colour cycle, chosen by (key - 1) % 12.
_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (1.0, 0.5019607843137255, 0.0),
    (1.0, 0.0, 0.5019607843137255),
    (0.5019607843137255, 1.0, 0.5019607843137255),
    (0.0, 0.5019607843137255, 1.0),
    (0.5019607843137255, 0.5019607843137255, 0.5019607843137255),
    (0.7254901960784313, 0.6666666666666666, 0.6078431372549019),
    (1.0, 0.0, 0.0),
)

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?> <CaretExtension>  '
    "<Date><![CDATA[2013-07-14T05:45:09]]></Date>   "
    '<VolumeInformation Index="0">   <LabelTable>\n'
)
_TAIL = (
    "\n  </LabelTable>  <StudyMetaDataLinkSet>  </StudyMetaDataLinkSet>  "
    "<VolumeType><![CDATA[Label]]></VolumeType>   </VolumeInformation></CaretExtension>\n"
    "              "
)


def label_table_xml(labels: Mapping[int, str]) -> bytes:
    """The XML label table for {label value: name}, in the reference tool's exact layout."""
    rows = []
    for key in sorted(labels):
        if key <= 0:
            continue
        r, g, b = _COLOURS[(key - 1) % len(_COLOURS)]
        name = labels[key].replace("]]>", "]]&gt;")
        rows.append(
            f'<Label Key="{key}" Red="{r}" Green="{g}" Blue="{b}" Alpha="1">'
            f"<![CDATA[{name}]]></Label>\n"
        )
    return (_HEAD + "".join(rows) + _TAIL).encode("utf-8")


def parse_label_table(content: bytes, *, source: str = "header extension") -> dict[int, str]:
    """Read {label value: name} from a Caret XML label table; {} if the content is not one."""
    text = content.rstrip(b"\x00 \n\t\r")
    if b"<LabelTable" not in text:
        return {}
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(
            f"Expected a valid XML label table in the {source}, got unparsable XML ({exc}); "
            "rewrite the file or strip its extension."
        ) from exc
    out: dict[int, str] = {}
    for label in root.iter("Label"):
        key = label.get("Key")
        if key is None or not key.strip().lstrip("-").isdigit():
            raise InputError(f"Expected integer label keys in the {source}, got {key!r}.")
        out[int(key)] = (label.text or "").strip()
    return out


def read_class_map_file(path: str | os.PathLike[str]) -> dict[int, str]:
    """A class map from a file: JSON `{"1": "spleen", ...}`, or text lines `ID NAME` /
    `ID,NAME` (a header line and `#` comments are skipped)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Expected a class map file (JSON or 'ID,NAME' lines) at '{p}', got {exc!r}; pass "
            "v1, v2, a task name or a readable file."
        ) from None
    pairs: list[tuple[str, str]] = []
    if text.lstrip().startswith("{"):
        try:
            pairs = [(str(k), str(v)) for k, v in json.loads(text).items()]
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InputError(f"Expected a JSON object {{id: name}} in '{p}', got {exc}.") from None
    else:
        for line in text.splitlines():
            parts = line.replace(",", " ").split()
            if len(parts) >= 2 and not line.lstrip().startswith("#"):
                pairs.append((parts[0], parts[1]))
    out = {int(k): v for k, v in pairs if k.strip().isdigit() and int(k) > 0}
    if not out:
        raise InputError(f"Expected 'ID,NAME' entries with ids >= 1 in '{p}', found none.")
    return dict(sorted(out.items()))
