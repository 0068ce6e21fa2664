"""The app's routes, one router per area, in the order the API documents them."""

from __future__ import annotations

from fastapi import APIRouter

from . import analyses, files, images, jobs, marks, page, search

ROUTERS: list[APIRouter] = [page.router, images.router, search.router, analyses.router,
                            jobs.router, marks.router, files.router]
