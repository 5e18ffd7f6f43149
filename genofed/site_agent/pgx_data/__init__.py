"""PyPGx 0.27.0 pharmacogenomic tables (MIT), as data; see SOURCE.md."""
