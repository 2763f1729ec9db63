"""``carrier-sim run``: carriers, phones and the system under test, driven by a scenario, judged by its checks."""
