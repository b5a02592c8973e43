"""Caption cleaning, filters, concept tagging and modality labels over records. No Beam here."""
