"""MkDocs hook: links from a docs page to a repository file outside ``docs/``.

A page links a study's report or ``ARCHITECTURE.md`` by its relative path
(``[report](../results/inspection/report.md)``), which works wherever the markdown is read as
files (GitHub, an editor). MkDocs cannot serve those files, and ``--strict`` fails on links it
cannot resolve, so before a page is rendered each such link is checked (a missing target is a
warning, which fails a strict build) and written as its repository path, or as a link into the
repository when ``repo_url`` is set in ``mkdocs.yml``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.repo_links")

# [text](../path) with an optional #anchor; images and links inside code are left alone.
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>\.\./[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")
_FENCE = re.compile(r"^(```|~~~)")


def _rewrite(line: str, page_dir: Path, root: Path, repo_url: str | None, where: str) -> str:
    def replace(match: re.Match) -> str:
        target = (page_dir / match["target"]).resolve()
        try:
            path = target.relative_to(root).as_posix()
        except ValueError:
            log.warning("%s: link %s leaves the repository", where, match["target"])
            return match[0]
        if not target.exists():
            log.warning("%s: link %s names %s, which does not exist", where, match["target"], path)
            return match[0]
        if repo_url:
            return f"[{match['text']}]({repo_url.rstrip('/')}/blob/HEAD/{path}{match['anchor'] or ''})"
        text = match["text"]
        return f"`{path}`" if text.strip("`") == path else f"{text} (`{path}`)"

    return _LINK.sub(replace, line)


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs = Path(config["docs_dir"]).resolve()
    root = Path(config["config_file_path"]).resolve().parent
    page_dir = (docs / page.file.src_uri).parent
    out, fenced = [], False
    for line in markdown.split("\n"):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced and "](../" in line:
            line = _rewrite(line, page_dir, root, config.get("repo_url"), page.file.src_uri)
        out.append(line)
    return "\n".join(out)
