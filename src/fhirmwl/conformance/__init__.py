"""The guide's conformance resources (profiles, maps, operations) shipped as package data.

See ``registry`` for read access and ``build`` for how the JSON is generated.
"""
