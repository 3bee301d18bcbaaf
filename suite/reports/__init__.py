"""Reports made from results: the terminal now; HTML and JUnit build on the index."""
