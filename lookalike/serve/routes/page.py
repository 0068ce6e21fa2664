"""``GET /``: the page (``static/app.js`` fills in each view)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ..deps import ServiceDep
from ..page import render_page

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(service: ServiceDep) -> HTMLResponse:
    return HTMLResponse(render_page(service))
