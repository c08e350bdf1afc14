// edgecount dashboard
