"""The page: one server-rendered HTML shell; ``static/app.js`` fills in each view.

No build step, no CDN: the HTML, CSS and JS are files in this package, so the page works
offline. Everything user-supplied (file names) is inserted as text, never as markup.
"""

from __future__ import annotations

from html import escape

from .service import Service

VIEWS = [("gallery", "Gallery"), ("search", "Search"), ("duplicates", "Duplicates"),
         ("groups", "Groups"), ("clusters", "Clusters"), ("outliers", "Outliers"),
         ("map", "Map")]


def render_page(service: Service) -> str:
    counts = service.collection.store.status_counts()
    record = service.collection.model
    model = escape(record.spec) if record else "no embeddings yet"
    nav = "".join(f'<a href="#{view}" data-view="{view}">{label}</a>' for view, label in VIEWS)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lookalike: {escape(service.root.name)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header>
  <div class="brand"><strong>lookalike</strong>
    <span class="where" title="{escape(str(service.root))}">{escape(service.root.name)}</span>
    <span class="facts">{counts.get("ok", 0):,} images &middot; {counts.get("skipped", 0):,}
    skipped &middot; {model}</span></div>
  <nav aria-label="views">{nav}</nav>
</header>
<main id="view"></main>
<div id="status" class="visually-hidden" role="status" aria-live="polite"></div>
<div id="tooltip" hidden></div>
<script type="module" src="/static/app.js"></script>
</body>
</html>
"""


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lookalike API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main id="docs"><h1>lookalike API</h1>
<p class="note">Every endpoint of this server, read from
<a href="/openapi.json">/openapi.json</a> (the full OpenAPI schema).</p></main>
<script type="module" src="/static/docs.js"></script>
</body>
</html>
"""
