"""fixture_platform."""
