"""One module per resource; each exposes ``router`` (an APIRouter using ApiRoute)."""
