"""The report's two renderings of the same sections: self-contained HTML (images as base64 PNG)
and markdown (images linked as ``plots/<stem>.png``). Pure: sections in, text out.
"""

from __future__ import annotations

import base64
import html
import re

from demix.report.section import Section


def _md_inline(text: str) -> str:
    """Escape HTML, then turn **bold** and `code` into tags (the only markdown the report uses)."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5}figure{margin:10px 0}figcaption{font-size:12px;color:#555}img{max-width:100%}
code{background:#f3f3f3;padding:0 3px}.meta{color:#666;font-size:12px}"""


def render_html(title: str, sections: list[Section], meta: str) -> str:
    """One self-contained page: inline CSS, figures as base64 PNG, no scripts, no external links."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for kind, b in s.blocks:
            if kind == "text":
                parts.append(f"<p>{_md_inline(b)}</p>")
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{_md_inline(x)}</li>" for x in b) + "</ul>")
            elif kind == "table":
                head, rows = b
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
                parts.append("</table>")
            else:
                _, png, cap = b
                b64 = base64.b64encode(png).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{b64}'>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(title: str, sections: list[Section], meta: str) -> str:
    """The same sections as markdown; figures link ``plots/<stem>.png`` (written beside it)."""
    lines = [f"# {title}", "", f"_{meta}_", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for kind, b in s.blocks:
            if kind == "text":
                lines += [b, ""]
            elif kind == "list":
                lines += [*(f"- {x}" for x in b), ""]
            elif kind == "table":
                head, rows = b
                lines.append("| " + " | ".join(head) + " |")
                lines.append("|" + "---|" * len(head))
                lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                lines.append("")
            else:
                stem, _, cap = b
                lines += [f"![{cap}](plots/{stem}.png)", ""]
    return "\n".join(lines)
