"""From recorded seconds to a verdict: the run folder, the streaming reduction, the summary,
gates, findings, JUnit and the HTML report. The runtime writes records in; everything that reads
numbers out reads them through here.
"""
