"""journey-mining: infer B2B customer journeys from CRM, web and email touchpoints.

Data flows one way: sources -> staging -> journeys -> mining -> reports.
Importing the package does nothing: no settings are built, no files are read.
"""

__version__ = "0.1.0"
