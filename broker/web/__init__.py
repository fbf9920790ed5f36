"""The MASH intake web pages and their JSON twins, as one router for the HTTP API's app."""

from __future__ import annotations

from fastapi import APIRouter as _APIRouter

from broker.web import api, pages

__all__ = ["router"]

#: Pages under ``/intake`` and the JSON API under ``/v1/intake``.
router = _APIRouter()
router.include_router(api.router)
router.include_router(pages.router)
