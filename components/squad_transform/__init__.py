"""SquadTransform: questions to 384-token windows with doc_stride, on Beam."""
