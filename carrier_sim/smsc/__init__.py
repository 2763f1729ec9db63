"""What a carrier's SMS centre decides: authenticate, throttle, store, route, report delivery, judge the peer.

Pure like the protocol core: it returns PDUs to send and deadlines; :mod:`carrier_sim.net` moves the bytes.
"""
