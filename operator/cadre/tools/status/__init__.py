"""`cadre status`: teams, quota, borrowing, spend and queues in one terminal view.

`view` turns what was read into a typed view model (pure, no I/O), `render` draws it with
rich or as JSON, `reading` reads the API with the user's own credentials."""
