"""suishen: the ASGI application and the platform every domain stands on."""
