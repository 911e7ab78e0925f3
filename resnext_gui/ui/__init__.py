"""Widgets only: the main window, the photo/heatmap view, the top-5 panel and the gallery. No torch here."""
