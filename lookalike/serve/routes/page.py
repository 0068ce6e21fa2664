"""``GET /``: the page (``static/app.js`` fills in each view); ``GET /docs``: the API's
endpoints, listed from ``/openapi.json`` by a local script (no CDN, works offline)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ..deps import ServiceDep
from ..page import DOCS_PAGE, render_page

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(service: ServiceDep) -> HTMLResponse:
    return HTMLResponse(render_page(service))


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)
