"""The asyncio layer that moves bytes between sockets and the pure SMPP and SMSC state machines."""
