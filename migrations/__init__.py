"""Generated migrations, one package per Tortoise app."""
