"""SVG pages -> one PDF file, with nothing but the standard library.

It draws the part of SVG that verovio writes, as PDF's own vector operators: groups and their
transforms, paths (every command, arcs included), polygons, polylines, rectangles, ellipses,
circles and lines, filled and stroked as the SVG and its ``<style>`` sheet say; shapes drawn by
``<use>`` (the music font's glyphs) once each, as PDF form XObjects; and text, set in PDF's
standard Times fonts (roman, bold, italic), which every PDF reader has, so nothing is embedded.
Text is written in the Windows Latin-1 encoding those fonts use; a character outside it is
replaced (a flat sign by "b", a sharp by "#").

Each page holds SVGs placed at given positions: a tune engraved on its own page, or several
tunes, one under another. The file is the same for the same pages (no dates, no random ids).
"""

from __future__ import annotations

import math
import re
import unicodedata
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass

__all__ = ["Placement", "svgs_to_pdf", "MM"]

MM = 72 / 25.4  # PDF points in a millimetre

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK = "{http://www.w3.org/1999/xlink}href"

# Advance widths (thousandths of the font size) of the characters 32-126 of the standard Times
# fonts, from Adobe's AFM files of the 14 PDF core fonts (as matplotlib ships them).
_WIDTHS = {name: [int(w) for w in text.split()] for name, text in {
    "Times-Roman": "250 333 408 500 500 833 778 333 333 333 500 564 250 333 250 278 500 500 500 500 500 500 500 500 "
                   "500 500 278 278 564 564 564 444 921 722 667 667 722 611 556 722 722 333 389 722 611 889 722 722 "
                   "556 722 667 556 611 722 722 944 722 722 611 333 278 333 469 500 333 444 500 444 500 444 333 500 "
                   "500 278 278 500 278 778 500 500 500 500 333 389 278 500 500 722 500 500 444 480 200 480 541",
    "Times-Bold": "250 333 555 500 500 1000 833 333 333 333 500 570 250 333 250 278 500 500 500 500 500 500 500 500 "
                  "500 500 333 333 570 570 570 500 930 722 667 722 722 667 611 778 778 389 500 778 667 944 722 778 "
                  "611 778 722 556 667 722 722 1000 722 722 667 333 278 333 581 500 333 500 556 444 556 444 333 500 "
                  "556 278 333 556 278 833 556 500 556 556 444 389 333 556 500 722 500 500 444 394 220 394 520",
    "Times-Italic": "250 333 420 500 500 833 778 333 333 333 500 675 250 333 250 278 500 500 500 500 500 500 500 500 "
                    "500 500 333 333 675 675 675 500 920 611 611 667 722 611 611 722 722 333 444 667 556 833 667 722 "
                    "611 722 611 500 556 722 611 833 611 556 556 389 278 389 422 500 333 500 500 444 500 444 278 500 "
                    "500 278 278 444 278 722 500 500 500 500 389 389 278 500 444 667 444 444 389 400 275 400 541",
    "Times-BoldItalic": "250 389 555 500 500 833 778 333 333 333 500 570 250 333 250 278 500 500 500 500 500 500 "
                        "500 500 500 500 333 333 570 570 570 500 832 667 667 667 722 667 667 722 778 389 500 667 611 "
                        "889 722 722 611 722 667 556 611 722 667 889 667 611 611 333 278 333 570 500 333 500 500 444 "
                        "500 444 333 500 556 278 278 500 278 778 556 500 500 500 389 389 278 556 444 667 500 444 389 "
                        "348 220 348 570",
}.items()}
_FONTS = {("normal", "normal"): ("F1", "Times-Roman"), ("bold", "normal"): ("F2", "Times-Bold"),
          ("normal", "italic"): ("F3", "Times-Italic"), ("bold", "italic"): ("F4", "Times-BoldItalic")}
_REPLACEMENTS = {"\u266d": "b", "\u266f": "#", "\u266e": "", "\u2009": " ", "\u00a0": " "}

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PATH_TOKEN = re.compile(r"[MmLlHhVvCcSsQqTtAaZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")

Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Placement:
    """An SVG on a page: its left edge ``x`` and top edge ``y`` (points from the page's top left
    corner) and its ``width`` in points; the height follows from the SVG's proportions."""

    svg: str
    x: float
    y: float
    width: float


def svgs_to_pdf(pages: list[list[Placement]], size: tuple[float, float], *, title: str = "") -> bytes:
    """A PDF of ``pages``, each a list of SVGs placed on it; ``size`` is (width, height) in points."""
    writer = _Writer()
    page_ids = []
    for placements in pages:
        content = []
        for placement in placements:
            content.append(writer.place(placement, size[1]))
        page_ids.append(writer.page(b"\n".join(content), size))
    return writer.finish(page_ids, title)


# --- the file --------------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.objects: list[bytes | None] = [None, None, None]  # 1 catalog, 2 pages, 3 resources
        self.forms: dict[bytes, str] = {}  # content of a shape -> its XObject name
        self.form_ids: dict[str, int] = {}

    def add(self, data: bytes) -> int:
        self.objects.append(data)
        return len(self.objects)

    def stream(self, dictionary: str, content: bytes) -> int:
        packed = zlib.compress(content, 9)
        return self.add(f"<< {dictionary} /Length {len(packed)} /Filter /FlateDecode >>\nstream\n".encode()
                        + packed + b"\nendstream")

    def form(self, content: bytes) -> str:
        """The XObject drawing ``content`` (made once for the same content)."""
        name = self.forms.get(content)
        if name is None:
            name = f"X{len(self.forms) + 1}"
            self.forms[content] = name
            self.form_ids[name] = self.stream(
                "/Type /XObject /Subtype /Form /BBox [-100000 -100000 100000 100000] /Resources 3 0 R", content)
        return name

    def place(self, placement: Placement, page_height: float) -> bytes:
        root = ET.fromstring(placement.svg)
        canvas = next((e for e in root.iter() if e.tag == f"{_SVG}svg" and e.get("viewBox")), root)
        box = [float(v) for v in _NUMBER.findall(canvas.get("viewBox") or "")] or \
            [0, 0, _length(root.get("width")), _length(root.get("height"))]
        scale = placement.width / box[2] if box[2] else 1.0
        painter = _Painter(self, root)
        # SVG units (y down) -> points (y up), from the placement's top left corner
        matrix = (scale, 0.0, 0.0, -scale, placement.x - scale * box[0], page_height - placement.y + scale * box[1])
        body = painter.children(canvas, _Style())
        return b"q " + _matrix(matrix) + b" cm\n" + body + b"\nQ"

    def page(self, content: bytes, size: tuple[float, float]) -> int:
        contents = self.stream("", content)
        return self.add(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_num(size[0])} {_num(size[1])}] "
                        f"/Resources 3 0 R /Contents {contents} 0 R >>".encode())

    def finish(self, page_ids: list[int], title: str) -> bytes:
        fonts = " ".join(f"/{key} << /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>"
                         for key, name in _FONTS.values())
        forms = " ".join(f"/{name} {number} 0 R" for name, number in self.form_ids.items())
        self.objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
        self.objects[1] = (f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] "
                           f"/Count {len(page_ids)} >>").encode()
        self.objects[2] = f"<< /Font << {fonts} >> /XObject << {forms} >> >>".encode()
        info = self.add(b"<< /Producer (folkrnn)" + (b" /Title " + _string(title) if title else b"") + b" >>")
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, data in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + data + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(self.objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
        out += (f"trailer\n<< /Size {len(self.objects) + 1} /Root 1 0 R /Info {info} 0 R >>\n"
                f"startxref\n{xref}\n%%EOF\n").encode()
        return bytes(out)


# --- drawing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """What an SVG element inherits from its parents."""

    fill: str = "black"
    stroke: str = "none"
    stroke_width: float = 1.0
    linecap: str = "butt"
    linejoin: str = "miter"
    font_size: float = 16.0
    font_weight: str = "normal"
    font_style: str = "normal"
    anchor: str = "start"
    color: str = "black"

    def with_(self, **changes) -> _Style:
        values = {**self.__dict__, **changes}
        return _Style(**values)


_PROPERTIES = {"fill": "fill", "stroke": "stroke", "stroke-width": "stroke_width",
               "stroke-linecap": "linecap", "stroke-linejoin": "linejoin", "font-size": "font_size",
               "font-weight": "font_weight", "font-style": "font_style", "text-anchor": "anchor", "color": "color"}


class _Painter:
    def __init__(self, writer: _Writer, root: ET.Element) -> None:
        self.writer = writer
        self.ids = {e.get("id"): e for e in root.iter() if e.get("id")}
        self.rules = _style_rules(root)

    def style(self, element: ET.Element, inherited: _Style) -> _Style | None:
        return _element_style(element, inherited, self.rules)

    def children(self, element: ET.Element, style: _Style) -> bytes:
        return b"\n".join(part for child in element if (part := self.draw(child, style)))

    def draw(self, element: ET.Element, inherited: _Style) -> bytes:
        tag = element.tag.replace(_SVG, "")
        if tag in ("defs", "style", "title", "desc", "metadata", "symbol", "clipPath", "mask"):
            return b""
        style = self.style(element, inherited)
        if style is None:
            return b""
        transform = _transform(element.get("transform"))
        if tag in ("g", "svg", "a"):
            body = self.children(element, style)
        elif tag == "use":
            body = self.use(element, style)
        elif tag == "text":
            body = _text(element, style)
        else:
            path = _shape(tag, element)
            body = _paint(path, style) if path else b""
        if not body:
            return b""
        if transform is not None:
            return b"q " + _matrix(transform) + b" cm\n" + body + b"\nQ"
        return body

    def use(self, element: ET.Element, style: _Style) -> bytes:
        href = element.get(_XLINK) or element.get("href") or ""
        target = self.ids.get(href.lstrip("#"))
        if target is None:
            return b""
        x, y = _length(element.get("x")), _length(element.get("y"))
        if target.tag == f"{_SVG}symbol":
            content = self.children(target, style)
        else:
            content = self.draw(target, style)
        if not content:
            return b""
        name = self.writer.form(content)
        shift = b"1 0 0 1 " + _num(x).encode() + b" " + _num(y).encode() + b" cm " if x or y else b""
        return b"q " + shift + f"/{name} Do Q".encode()


def _element_style(element: ET.Element, inherited: _Style, rules: list) -> _Style | None:
    """An element's style (None: not drawn): the inherited one, its class rules, its attributes."""
    tag = element.tag.replace(_SVG, "")
    declared: dict[str, str] = {}
    classes = set((element.get("class") or "").split())
    for (rule_tag, rule_class), declarations in rules:
        if rule_tag in (tag, "") and (rule_class is None or rule_class in classes):
            declared.update(declarations)
    for name in list(_PROPERTIES) + ["visibility", "display"]:
        if element.get(name) is not None:
            declared[name] = element.get(name)
    if declared.get("visibility") == "hidden" or declared.get("display") == "none":
        return None
    changes = {}
    for name, value in declared.items():
        field = _PROPERTIES.get(name)
        if field is None:
            continue
        if field in ("stroke_width", "font_size"):
            changes[field] = _length(value)
        elif field == "font_weight":
            changes[field] = "bold" if value in ("bold", "bolder") or value.isdigit() and int(value) >= 600 \
                else "normal"
        elif field == "font_style":
            changes[field] = "italic" if value in ("italic", "oblique") else "normal"
        else:
            changes[field] = value
    return inherited.with_(**changes) if changes else inherited


def _style_rules(root: ET.Element) -> list[tuple[tuple[str, str | None], dict[str, str]]]:
    """The <style> sheet as ((tag, class), declarations): each selector's last part only
    (``#page g.mNum`` -> ("g", "mNum")), which is how verovio writes its rules."""
    rules = []
    for sheet in root.iter(f"{_SVG}style"):
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", sheet.text or ""):
            declarations = {}
            for declaration in body.split(";"):
                name, _, value = declaration.partition(":")
                if value.strip():
                    declarations[name.strip()] = value.strip()
            for selector in selectors.split(","):
                last = selector.split()[-1] if selector.split() else ""
                tag, _, cls = last.partition(".")
                if tag.startswith("#"):
                    continue
                rules.append(((tag, cls or None), declarations))
    return rules


def _length(value: str | None) -> float:
    match = _NUMBER.match((value or "").strip())
    return float(match.group()) if match else 0.0


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _matrix(m: Matrix) -> bytes:
    return " ".join(_num(v) for v in m).encode()


def _multiply(a: Matrix, b: Matrix) -> Matrix:
    """The transform a then b, as SVG's ``transform="b a"`` composes (a applied first)."""
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
            a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5])


def _transform(text: str | None) -> Matrix | None:
    if not text:
        return None
    result: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    for name, arguments in _TRANSFORM.findall(text):
        v = [float(n) for n in _NUMBER.findall(arguments)]
        if name == "matrix" and len(v) == 6:
            m = tuple(v)
        elif name == "translate":
            m = (1.0, 0.0, 0.0, 1.0, v[0] if v else 0.0, v[1] if len(v) > 1 else 0.0)
        elif name == "scale":
            sx = v[0] if v else 1.0
            m = (sx, 0.0, 0.0, v[1] if len(v) > 1 else sx, 0.0, 0.0)
        elif name == "rotate":
            a = math.radians(v[0] if v else 0.0)
            m = (math.cos(a), math.sin(a), -math.sin(a), math.cos(a), 0.0, 0.0)
            if len(v) == 3:
                m = _multiply(_multiply((1.0, 0.0, 0.0, 1.0, -v[1], -v[2]), m), (1.0, 0.0, 0.0, 1.0, v[1], v[2]))
        elif name == "skewX":
            m = (1.0, 0.0, math.tan(math.radians(v[0] if v else 0.0)), 1.0, 0.0, 0.0)
        elif name == "skewY":
            m = (1.0, math.tan(math.radians(v[0] if v else 0.0)), 0.0, 1.0, 0.0, 0.0)
        else:
            continue
        # in "t1 t2", t2 applies first: the list composes right to left
        result = _multiply(m, result)
    return result


def _color(value: str, current: str) -> tuple[float, float, float] | None:
    value = value.strip().lower()
    if value in ("none", "transparent"):
        return None
    if value == "currentcolor":
        value = current.strip().lower()
    if value.startswith("#") and len(value) in (4, 7):
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return {"white": (1.0, 1.0, 1.0), "red": (1.0, 0.0, 0.0)}.get(value, (0.0, 0.0, 0.0))


def _paint(path: bytes, style: _Style) -> bytes:
    fill = _color(style.fill, style.color)
    stroke = _color(style.stroke, style.color) if style.stroke_width > 0 else None
    if fill is None and stroke is None:
        return b""
    ops = []
    if fill is not None and fill != (0.0, 0.0, 0.0):
        ops.append(" ".join(_num(c) for c in fill) + " rg")
    if stroke is not None:
        if stroke != (0.0, 0.0, 0.0):
            ops.append(" ".join(_num(c) for c in stroke) + " RG")
        ops.append(f"{_num(style.stroke_width)} w {('butt', 'round', 'square').index(style.linecap) if style.linecap in ('butt', 'round', 'square') else 0} J "  # noqa: E501
                   f"{('miter', 'round', 'bevel').index(style.linejoin) if style.linejoin in ('miter', 'round', 'bevel') else 0} j")  # noqa: E501
    operator = "B" if fill is not None and stroke is not None else "f" if fill is not None else "S"
    prefix = (" ".join(ops) + "\n").encode() if ops else b""
    return b"q " + prefix + path + b" " + operator.encode() + b" Q"


# --- shapes -> path operators -------------------------------------------------------------------


def _shape(tag: str, element: ET.Element) -> bytes:
    get = element.get
    if tag == "path":
        return _path(get("d") or "")
    if tag in ("polygon", "polyline"):
        values = [float(n) for n in _NUMBER.findall(get("points") or "")]
        points = list(zip(values[0::2], values[1::2]))
        if len(points) < 2:
            return b""
        ops = [f"{_num(points[0][0])} {_num(points[0][1])} m"]
        ops += [f"{_num(x)} {_num(y)} l" for x, y in points[1:]]
        if tag == "polygon":
            ops.append("h")
        return " ".join(ops).encode()
    if tag == "rect":
        x, y, w, h = (_length(get(name)) for name in ("x", "y", "width", "height"))
        return f"{_num(x)} {_num(y)} {_num(w)} {_num(h)} re".encode() if w > 0 and h > 0 else b""
    if tag in ("ellipse", "circle"):
        cx, cy = _length(get("cx")), _length(get("cy"))
        rx = _length(get("r")) if tag == "circle" else _length(get("rx"))
        ry = _length(get("r")) if tag == "circle" else _length(get("ry"))
        return _ellipse(cx, cy, rx, ry) if rx > 0 and ry > 0 else b""
    if tag == "line":
        x1, y1, x2, y2 = (_length(get(name)) for name in ("x1", "y1", "x2", "y2"))
        return f"{_num(x1)} {_num(y1)} m {_num(x2)} {_num(y2)} l".encode()
    return b""


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> bytes:
    k = 0.5522847498  # a quarter circle as a cubic Bezier
    ops = [f"{_num(cx + rx)} {_num(cy)} m"]
    for (x1, y1, x2, y2, x3, y3) in (
            (cx + rx, cy + k * ry, cx + k * rx, cy + ry, cx, cy + ry),
            (cx - k * rx, cy + ry, cx - rx, cy + k * ry, cx - rx, cy),
            (cx - rx, cy - k * ry, cx - k * rx, cy - ry, cx, cy - ry),
            (cx + k * rx, cy - ry, cx + rx, cy - k * ry, cx + rx, cy)):
        ops.append(" ".join(_num(v) for v in (x1, y1, x2, y2, x3, y3)) + " c")
    ops.append("h")
    return " ".join(ops).encode()


def _path(d: str) -> bytes:
    """SVG path data -> PDF path operators (m, l, c, h), relative commands made absolute,
    quadratic curves raised to cubic ones, arcs drawn as cubic curves."""
    tokens = _PATH_TOKEN.findall(d)
    ops: list[str] = []
    x = y = start_x = start_y = 0.0
    last_control: tuple[float, float] | None = None  # for S and T
    last_command = ""
    command = ""
    i = 0

    def numbers(count: int) -> list[float] | None:
        nonlocal i
        if i + count > len(tokens) or any(t.isalpha() for t in tokens[i:i + count]):
            return None
        values = [float(t) for t in tokens[i:i + count]]
        i += count
        return values

    def curve(x1, y1, x2, y2, x3, y3) -> None:
        ops.append(" ".join(_num(v) for v in (x1, y1, x2, y2, x3, y3)) + " c")

    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
            if command in "Zz":
                ops.append("h")
                x, y = start_x, start_y
                last_command, last_control = command, None
                continue
        elif not command:
            break
        relative = command.islower()
        base_x, base_y = (x, y) if relative else (0.0, 0.0)
        upper = command.upper()
        if upper == "M":
            v = numbers(2)
            if v is None:
                break
            x, y = base_x + v[0], base_y + v[1]
            start_x, start_y = x, y
            ops.append(f"{_num(x)} {_num(y)} m")
            command = "l" if relative else "L"  # further pairs are lines
            last_control = None
        elif upper in "LHV":
            v = numbers(2 if upper == "L" else 1)
            if v is None:
                break
            if upper == "L":
                x, y = base_x + v[0], base_y + v[1]
            elif upper == "H":
                x = (x if relative else 0.0) + v[0]
            else:
                y = (y if relative else 0.0) + v[0]
            ops.append(f"{_num(x)} {_num(y)} l")
            last_control = None
        elif upper == "C":
            v = numbers(6)
            if v is None:
                break
            x1, y1, x2, y2 = base_x + v[0], base_y + v[1], base_x + v[2], base_y + v[3]
            x, y = base_x + v[4], base_y + v[5]
            curve(x1, y1, x2, y2, x, y)
            last_control = (x2, y2)
        elif upper == "S":
            v = numbers(4)
            if v is None:
                break
            x1, y1 = (2 * x - last_control[0], 2 * y - last_control[1]) \
                if last_control and last_command.upper() in "CS" else (x, y)
            x2, y2 = base_x + v[0], base_y + v[1]
            x, y = base_x + v[2], base_y + v[3]
            curve(x1, y1, x2, y2, x, y)
            last_control = (x2, y2)
        elif upper in "QT":
            if upper == "Q":
                v = numbers(4)
                if v is None:
                    break
                qx, qy = base_x + v[0], base_y + v[1]
                end_x, end_y = base_x + v[2], base_y + v[3]
            else:
                v = numbers(2)
                if v is None:
                    break
                qx, qy = (2 * x - last_control[0], 2 * y - last_control[1]) \
                    if last_control and last_command.upper() in "QT" else (x, y)
                end_x, end_y = base_x + v[0], base_y + v[1]
            curve(x + 2 / 3 * (qx - x), y + 2 / 3 * (qy - y), end_x + 2 / 3 * (qx - end_x),
                  end_y + 2 / 3 * (qy - end_y), end_x, end_y)
            x, y = end_x, end_y
            last_control = (qx, qy)
        elif upper == "A":
            v = numbers(7)
            if v is None:
                break
            end_x, end_y = base_x + v[5], base_y + v[6]
            for segment in _arc(x, y, v[0], v[1], v[2], bool(v[3]), bool(v[4]), end_x, end_y):
                curve(*segment)
            x, y = end_x, end_y
            last_control = None
        else:
            break
        last_command = command
    return " ".join(ops).encode()


def _arc(x1, y1, rx, ry, angle, large, sweep, x2, y2):
    """An SVG elliptical arc as cubic Bezier segments (SVG 1.1, appendix F.6)."""
    if (x1, y1) == (x2, y2):
        return []
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0:
        return [(x1, y1, x2, y2, x2, y2)]
    phi = math.radians(angle)
    cos, sin = math.cos(phi), math.sin(phi)
    dx, dy = (x1 - x2) / 2, (y1 - y2) / 2
    px, py = cos * dx + sin * dy, -sin * dx + cos * dy
    scale = px * px / (rx * rx) + py * py / (ry * ry)
    if scale > 1:
        rx, ry = rx * math.sqrt(scale), ry * math.sqrt(scale)
    numerator = rx * rx * ry * ry - rx * rx * py * py - ry * ry * px * px
    root = math.sqrt(max(numerator, 0) / (rx * rx * py * py + ry * ry * px * px))
    if large == sweep:
        root = -root
    cxp, cyp = root * rx * py / ry, -root * ry * px / rx
    cx = cos * cxp - sin * cyp + (x1 + x2) / 2
    cy = sin * cxp + cos * cyp + (y1 + y2) / 2

    def angle_of(ux, uy, vx, vy):
        value = math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)
        return value

    theta = angle_of(1, 0, (px - cxp) / rx, (py - cyp) / ry)
    delta = angle_of((px - cxp) / rx, (py - cyp) / ry, (-px - cxp) / rx, (-py - cyp) / ry)
    if not sweep and delta > 0:
        delta -= 2 * math.pi
    elif sweep and delta < 0:
        delta += 2 * math.pi
    count = max(1, math.ceil(abs(delta) / (math.pi / 2)))
    step = delta / count
    k = 4 / 3 * math.tan(step / 4)
    out = []

    def point(t):
        return (cx + rx * math.cos(t) * cos - ry * math.sin(t) * sin,
                cy + rx * math.cos(t) * sin + ry * math.sin(t) * cos)

    def derivative(t):
        return (-rx * math.sin(t) * cos - ry * math.cos(t) * sin,
                -rx * math.sin(t) * sin + ry * math.cos(t) * cos)

    for n in range(count):
        t1, t2 = theta + n * step, theta + (n + 1) * step
        (ax, ay), (bx, by) = point(t1), point(t2)
        (dax, day), (dbx, dby) = derivative(t1), derivative(t2)
        out.append((ax + k * dax, ay + k * day, bx - k * dbx, by - k * dby, bx, by))
    return out


# --- text -----------------------------------------------------------------------------------------


def _encode(text: str) -> str:
    text = "".join(_REPLACEMENTS.get(c, c) for c in text)
    return text.encode("cp1252", errors="replace").decode("cp1252")


def _width(text: str, font: str, size: float) -> float:
    widths = _WIDTHS[font]
    total = 0
    for char in text:
        code = ord(char)
        if not 32 <= code <= 126:
            base = unicodedata.normalize("NFKD", char)[:1]
            code = ord(base) if base and 32 <= ord(base) <= 126 else ord("n")
        total += widths[code - 32]
    return total * size / 1000


def _string(text: str) -> bytes:
    data = _encode(text).encode("cp1252", errors="replace")
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _text(element: ET.Element, style: _Style) -> bytes:
    """A <text> and its <tspan>s: chunks that start where an x or y is given, each shifted by its
    text-anchor (middle, end) by its width in the Times metrics."""
    chunks: list[list] = []  # [x, y, anchor, [(text, font key, font name, size)]]

    def visit(node: ET.Element, inherited: _Style, x: float | None, y: float | None) -> None:
        own = _element_style(node, inherited, [])
        if own is None:
            return
        new_x = node.get("x")
        new_y = node.get("y")
        if new_x is not None or new_y is not None or not chunks:
            last = chunks[-1] if chunks else [0.0, 0.0]
            chunks.append([_length(new_x) if new_x is not None else (x if x is not None else last[0]),
                           _length(new_y) if new_y is not None else (y if y is not None else last[1]),
                           own.anchor, []])
        add(node.text, own)
        for child in node:
            visit(child, own, None, None)
            add(child.tail, own)

    def add(text: str | None, own: _Style) -> None:
        text = re.sub(r"\s+", " ", (text or "").replace("\n", ""))
        if not text.strip() or own.font_size <= 0:
            return
        key, name = _FONTS[(own.font_weight, own.font_style)]
        chunks[-1][3].append((text, key, name, own.font_size))

    visit(element, style, None, None)
    out = []
    for x, y, anchor, runs in chunks:
        if not runs:
            continue
        runs[0] = (runs[0][0].lstrip(),) + runs[0][1:]
        runs[-1] = (runs[-1][0].rstrip(),) + runs[-1][1:]
        width = sum(_width(_encode(text), name, size) for text, _, name, size in runs)
        shift = {"middle": width / 2, "end": width}.get(anchor, 0.0)
        ops = [f"BT 1 0 0 -1 {_num(x - shift)} {_num(y)} Tm"]
        for text, key, _, size in runs:
            ops.append(f"/{key} {_num(size)} Tf " + _string(text).decode("latin-1") + " Tj")
        ops.append("ET")
        out.append(" ".join(ops))
    return "\n".join(out).encode("latin-1")
