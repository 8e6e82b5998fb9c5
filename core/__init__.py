"""The core of go-reports: settings, the one schema, the spec compiler, contracts and the bus.

It imports none of the programs (workers, operator, api, cli); they all build on it.
"""
