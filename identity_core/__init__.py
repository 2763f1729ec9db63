"""identity-core: a minimal phone-number identity service that binds numbers to devices over SMS.

It reaches carriers only over the wire (SMPP as an ESME, HTTP), never by importing carrier_sim.
"""
