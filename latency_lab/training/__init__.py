"""Image folders, the synthetic set, the data pipeline, training and Net2Net transfer."""
