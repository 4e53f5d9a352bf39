"""HTTP and WebSocket serving (aiohttp): the endpoint, status, dev login, pages, admin API."""
