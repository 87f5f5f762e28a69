using System.Text.RegularExpressions;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Tests.Metrics;

/// <summary>The demo's report colours a score's change by whether it helped; a change that shows as 0.000 is neither.</summary>
public sealed class PersonalizationReportTests
{
    [Fact]
    public void ChangesAreUpDownOrUnchangedAtTheShownPrecision()
    {
        var html = PersonalizationReport.Render(new PersonalizationReportData
        {
            Title = "t", Facts = [], InstanceImages = [], Pairs = [],
            Scores =
            [
                new("rises", 0.5, 0.6, null, ""), new("falls", 0.5, 0.4, null, ""), new("same", 0.7, 0.7, null, ""),
                new("tiny", 0.5, 0.5 + 4e-4, null, ""), new("loss falls", 0.3, 0.2, null, "", HigherIsBetter: false),
            ],
        });
        var cells = Regex.Matches(html, "<td class=\"(up|down|same)\">([^<]*)</td>").Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();
        Assert.Equal([("up", "+0.100"), ("down", "-0.100"), ("same", "±0.000"), ("same", "±0.000"), ("up", "-0.100")], cells);
    }
}
