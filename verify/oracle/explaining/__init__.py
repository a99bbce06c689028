"""Explaining a wrong result by its structure (the term map, ``_terms``)."""
