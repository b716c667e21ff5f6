"""Documentation and publishing: DDI Codebook 2.5, HTML codebook, Data Package, NADA."""
