"""The core both back ends share: languages, models, the runner and its envelope, settings."""
