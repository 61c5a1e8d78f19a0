"""The desktop window (PySide6 widgets only; model work goes through core.engine.Engine)."""
