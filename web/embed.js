// edgecount embed
