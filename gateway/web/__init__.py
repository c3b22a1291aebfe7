"""The chat page and the leaderboard: HTML and static assets served from this folder."""
