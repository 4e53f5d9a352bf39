"""roomcast: a real-time WebSocket gateway with automatic rooms.

A message travels: socket -> ``server.websocket`` -> ``protocol`` -> ``session``
-> ``node`` -> ``broker`` -> ``hub`` -> ``writer`` -> socket.
"""

__version__ = "0.1.0"
