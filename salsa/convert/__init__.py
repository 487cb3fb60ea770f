"""Weight converters: `python -m salsa.convert <component> --src <downloaded weights> --out DIR`."""
