"""The studio's Qt-free models: the open shot and its edits, the timeline, the box overlay, the
condition view's camera and renderer, daemon connections and jobs, settings and history."""
