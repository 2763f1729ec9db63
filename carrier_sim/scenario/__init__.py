"""Scenario files: what carriers, phones, load, faults and checks a run declares (model, schema, loader, plan)."""
