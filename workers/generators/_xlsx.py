"""A streaming .xlsx writer: SpreadsheetML written straight into zip entries.

Why our own: openpyxl's write-only mode builds an object per cell and an XML element per cell;
at ~4,000 rows/s it made a 1,000,000-row report take two minutes, twenty times longer than
reading the rows. Writing the sheet XML as text (goreports.workers.generators._xlsx_cells
formats a column of cells at a time) and deflating it at a fast level keeps the writer ahead of
the rows arriving, with memory flat: a row batch is formatted, compressed and gone.

What a workbook holds, and nothing more: worksheets with column widths, a frozen header row and
an auto-filter; inline strings; one styles part (bold header font, number formats, the quote
prefix of the formula guard); the workbook part with the filter ranges as defined names; core
properties. Excel, LibreOffice and openpyxl open it (tests check the last two).

Deflate: a sheet's XML is most of the work left once its text is made (~300 MB for 1,000,000
rows of ten columns). With the `isal` package (Intel's ISA-L deflate, a native wheel) installed,
sheet entries are compressed by it at its level 1, ~3x faster than zlib at its fastest level
and smaller; without it, zlib at level 1. Either way the entry is ordinary deflate, so the file
is the same kind of file.

A zip file takes one entry at a time. The first sheet that starts writes into the zip directly;
a sheet that starts while another is still streaming (sheets of different datasets are filled
at the same time) writes to a temporary file, copied into the zip when the zip is free again.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Sequence
from xml.sax.saxutils import quoteattr

from goreports.workers.generators._xlsx_cells import Styles, escape

COMPRESS_LEVEL = 1  # zlib's deflate level: ~3x faster than the default, files ~15% larger
try:
    from isal import isal_zlib as _fast_deflate
except ImportError:  # an optional accelerator (see the module docstring)
    _fast_deflate = None
MAX_TITLE = 31
_INVALID_TITLE = re.compile(r"[\\*?:/\[\]]")

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


class InvalidTitle(ValueError):
    """A sheet title Excel refuses."""


def column_letter(index: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


class SheetPart:
    """One worksheet part being written: header, rows, then the closing elements."""

    def __init__(self, book: "XlsxWriter", title: str, index: int) -> None:
        self.book = book
        self.title = title
        self.index = index  # 1-based: xl/worksheets/sheet{index}.xml
        self.columns = 0
        self.rows = 0  # rows written, header included
        self.auto_filter = False
        self._out: IO[bytes] | None = None
        self._spool: IO[bytes] | None = None
        self.closed = False

    @property
    def arcname(self) -> str:
        return f"xl/worksheets/sheet{self.index}.xml"

    def begin(self, headers: Sequence[str], widths: Sequence[float], *, freeze: bool,
              auto_filter: bool) -> None:
        self._out = self.book._claim(self)
        self.columns = len(headers)
        self.auto_filter = auto_filter and bool(headers)
        parts = [_XML, f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">']
        if freeze:
            parts.append('<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" '
                         'topLeftCell="A2" activePane="bottomLeft" state="frozen"/><selection '
                         'pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>')
        else:
            parts.append('<sheetViews><sheetView workbookViewId="0"/></sheetViews>')
        parts.append('<sheetFormatPr defaultRowHeight="15"/>')
        if widths:
            parts.append("<cols>")
            parts.extend(f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
                         for i, w in enumerate(widths, 1))
            parts.append("</cols>")
        parts.append('<sheetData><row r="1">')
        parts.extend(self.book.styles.header_cell(h) for h in headers)
        parts.append("</row>")
        self.rows = 1
        self.write("".join(parts))

    def write(self, xml: str) -> None:
        assert self._out is not None
        self._out.write(xml.encode("utf-8"))

    def end(self) -> None:
        tail = ["</sheetData>"]
        if self.auto_filter:
            tail.append(f'<autoFilter ref="{self.filter_ref}"/>')
        tail.append("</worksheet>")
        self.write("".join(tail))
        out, self._out = self._out, None
        assert out is not None
        self.closed = True
        self.book._release(self, out)

    @property
    def filter_ref(self) -> str:
        return f"A1:{column_letter(self.columns)}{self.rows}"

    def discard(self) -> None:
        for f in (self._out, self._spool):
            if f is not None:
                try:
                    f.close()
                except (OSError, ValueError):
                    pass
        self._out = self._spool = None


class XlsxWriter:
    """Writes one .xlsx file; `sheet()` parts in tab order, `close()` writes the rest."""

    def __init__(self, path: Path, *, spool_dir: Path | None = None) -> None:
        self.path = path
        self.spool_dir = spool_dir
        self.styles = Styles()
        self.sheets: list[SheetPart] = []
        self._titles: set[str] = set()
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED,
                                    compresslevel=COMPRESS_LEVEL, allowZip64=True)
        self._streaming: SheetPart | None = None
        self._spooled: list[tuple[SheetPart, IO[bytes]]] = []

    def sheet(self, title: str) -> SheetPart:
        """A new worksheet; the title is checked, and made unique as openpyxl does ("Data1")."""
        if not title:
            raise InvalidTitle("a sheet title cannot be empty")
        bad = _INVALID_TITLE.search(title)
        if bad:
            raise InvalidTitle(f"Invalid character {bad.group()} found in sheet title")
        if len(title) > MAX_TITLE:
            raise InvalidTitle(f"sheet title {title!r} is longer than {MAX_TITLE} characters")
        unique, n = title, 0
        while unique.lower() in self._titles:
            n += 1
            unique = f"{title}{n}"
        self._titles.add(unique.lower())
        part = SheetPart(self, unique, len(self.sheets) + 1)
        self.sheets.append(part)
        return part

    def order(self, parts: Sequence[SheetPart]) -> None:
        """Set the tab order (continuation sheets are created after sheets listed later)."""
        assert sorted(p.index for p in parts) == sorted(p.index for p in self.sheets)
        self.sheets = list(parts)

    # -- one zip entry at a time ------------------------------------------------------------------
    def _claim(self, part: SheetPart) -> IO[bytes]:
        if self._streaming is None:
            self._streaming = part
            return _faster(self._zip.open(_entry(part.arcname), "w", force_zip64=True))
        spool = tempfile.TemporaryFile(prefix=".xlsx-sheet-", dir=self.spool_dir)
        part._spool = spool
        return spool

    def _release(self, part: SheetPart, out: IO[bytes]) -> None:
        if part is self._streaming:
            out.close()
            self._streaming = None
            self._copy_spooled()
        else:
            self._spooled.append((part, out))

    def _copy_spooled(self) -> None:
        while self._spooled and self._streaming is None:
            part, spool = self._spooled.pop(0)
            spool.seek(0)
            with _faster(self._zip.open(_entry(part.arcname), "w", force_zip64=True)) as dst:
                shutil.copyfileobj(spool, dst, 1 << 20)
            spool.close()
            part._spool = None

    # -- the rest of the package -----------------------------------------------------------------
    def close(self) -> None:
        """Write every part but the sheets, and the zip's directory."""
        if self._streaming is not None or any(not p.closed for p in self.sheets):
            raise RuntimeError("every sheet must be ended before the workbook is closed")
        self._copy_spooled()
        z = self._zip
        for name, xml in (("[Content_Types].xml", self._content_types()),
                          ("_rels/.rels", _ROOT_RELS),
                          ("docProps/app.xml", _APP),
                          ("docProps/core.xml", _core()),
                          ("xl/workbook.xml", self._workbook()),
                          ("xl/_rels/workbook.xml.rels", self._workbook_rels()),
                          ("xl/styles.xml", self._styles_xml())):
            z.writestr(_entry(name), xml.encode("utf-8"))
        z.close()

    def discard(self) -> None:
        """Drop everything (a failed run): temporary files closed, the zip closed unfinished."""
        for part in self.sheets:
            part.discard()
        for _, spool in self._spooled:
            spool.close()
        self._spooled = []
        self._streaming = None
        try:
            self._zip.close()
        except (OSError, ValueError, RuntimeError):
            pass

    def _content_types(self) -> str:
        sheets = "".join(f'<Override PartName="/{p.arcname}" ContentType="{_CT_SHEET}"/>'
                         for p in self.sheets)
        return (f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
                '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
                f"{sheets}</Types>")

    def _workbook(self) -> str:
        sheets = "".join(f'<sheet name={quoteattr(p.title)} sheetId="{p.index}" r:id="rId{p.index}"/>'
                         for p in self.sheets)
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{pos}" hidden="1">'
            f"{escape(_quote_title(p.title))}!{_absolute(p.filter_ref)}</definedName>"
            for pos, p in enumerate(self.sheets) if p.auto_filter)
        defined = f"<definedNames>{names}</definedNames>" if names else ""
        return (f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
                '<bookViews><workbookView activeTab="0"/></bookViews>'
                f"<sheets>{sheets}</sheets>{defined}<calcPr calcId=\"124519\" fullCalcOnLoad=\"1\"/>"
                "</workbook>")

    def _workbook_rels(self) -> str:
        rels = "".join(f'<Relationship Id="rId{p.index}" Type="{_REL}/worksheet" '
                       f'Target="worksheets/sheet{p.index}.xml"/>' for p in self.sheets)
        return (f'{_XML}<Relationships xmlns="{_PKG_REL}">{rels}'
                f'<Relationship Id="rId{len(self.sheets) + 1}" Type="{_REL}/styles" '
                'Target="styles.xml"/></Relationships>')

    def _styles_xml(self) -> str:
        formats: dict[str, int] = {}
        xfs = []
        for i, (fmt, quote) in enumerate(self.styles.xfs):
            num = 0
            if fmt and fmt != "General":
                num = formats.setdefault(fmt, 164 + len(formats))
            attrs = f'numFmtId="{num}" fontId="{1 if i == Styles.HEADER else 0}" fillId="0" borderId="0" xfId="0"'
            if num:
                attrs += ' applyNumberFormat="1"'
            if i == Styles.HEADER:
                attrs += ' applyFont="1"'
            if quote:
                attrs += ' quotePrefix="1"'
            xfs.append(f"<xf {attrs}/>")
        num_fmts = "".join(f'<numFmt numFmtId="{n}" formatCode={quoteattr(f)}/>'
                           for f, n in formats.items())
        return (f'{_XML}<styleSheet xmlns="{_MAIN}">'
                + (f'<numFmts count="{len(formats)}">{num_fmts}</numFmts>' if formats else "")
                + '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
                '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
                '<fills count="2"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
                '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
                '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
                f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
                '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                "</styleSheet>")


def _quote_title(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _absolute(ref: str) -> str:
    """A1:J20 -> $A$1:$J$20."""
    return ":".join(re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", r) for r in ref.split(":"))


def _faster(handle: IO[bytes]) -> IO[bytes]:
    """A zip entry being written, with ISA-L's deflate in place of zlib's when installed.
    zipfile keeps the compressor of an open entry in `_compressor` (CPython 3.8-3.13); the
    entry must not have been written to yet. Its CRC and sizes stay zipfile's business."""
    if _fast_deflate is not None and getattr(handle, "_compressor", None) is not None:
        handle._compressor = _fast_deflate.compressobj(  # type: ignore[attr-defined]
            _fast_deflate.ISAL_BEST_SPEED + 1, _fast_deflate.DEFLATED, -15)
    return handle


def _entry(name: str) -> zipfile.ZipInfo:
    """A deflated zip entry stamped now (a ZipInfo of our own is stored uncompressed unless told)."""
    now = dt.datetime.now()
    info = zipfile.ZipInfo(name, (now.year, now.month, now.day, now.hour, now.minute, now.second))
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined] # what ZipFile.open sets
    return info


def _core() -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'{_XML}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<dc:creator>go-reports</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified>'
            "</cp:coreProperties>")


_ROOT_RELS = (f'{_XML}<Relationships xmlns="{_PKG_REL}">'
              f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
              f'<Relationship Id="rId2" Type="{_PKG_REL}/metadata/core-properties" Target="docProps/core.xml"/>'
              f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/>'
              "</Relationships>")
_APP = (f'{_XML}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
        "<Application>go-reports</Application></Properties>")
