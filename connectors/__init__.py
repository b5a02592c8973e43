"""Sources and formats: turn outside data (PMC, classification datasets, image files) into records. No Beam here."""
