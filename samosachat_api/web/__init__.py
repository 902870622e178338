"""What every capability's routes share: authentication, the route decorator and rendering,
reading input, the SSE relay, and the schemas' building blocks."""
