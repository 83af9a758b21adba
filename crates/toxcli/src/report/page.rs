//! The report's HTML: one file, its style and charts inline, every value
//! from the store HTML-escaped. Sections and charts carry ids and
//! `data-chart` names that the browser test looks for.

use std::fmt::Write;

use super::ReportData;
use super::charts::{self, DayPoint};

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2rem auto; max-width: 1140px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta, .note { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; word-break: break-word; max-width: 720px; }
code { font-size: 0.85rem; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5rem; }
figure { margin: 0; }
figure svg { display: block; }
";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn score(value: f64) -> String {
    format!("{value:.4}")
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// The whole page.
pub fn render(data: &ReportData<'_>) -> anyhow::Result<String> {
    let table = data.table;
    let model = escape(table.model);
    let toxicity = table.columns.iter().position(|column| *column == "toxicity").unwrap_or(0);
    let summary = &data.summary;
    let mut html = String::with_capacity(256 * 1024);
    write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>toxscore report: {model}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Toxicity report: model <code>{model}</code></h1>\n\
         <p class=\"meta\">Store <code>{store}</code>, score table <code>{score_table}</code>. \
         Made {generated} by toxcli {version}. A status counts as toxic when its toxicity is at least {threshold}.</p>\n",
        store = escape(&data.store),
        score_table = escape(&table.table),
        generated = escape(&data.generated_at),
        version = env!("CARGO_PKG_VERSION"),
        threshold = data.query.threshold,
    )?;

    // Counts and checkpoints.
    html.push_str("<section id=\"counts\">\n<h2>Counts</h2>\n<table id=\"counts-table\">\n");
    for (label, value) in [
        ("tweets (distinct status ids)", data.statuses),
        ("distinct texts", data.texts),
        ("users", summary.users),
        ("texts scored by this model", data.scored_texts),
        ("texts not scored yet", data.remaining_texts),
        ("scored statuses", summary.scored_statuses),
    ] {
        writeln!(html, "<tr><th>{label}</th><td class=\"number\">{}</td></tr>", thousands(value))?;
    }
    html.push_str("</table>\n<h3>Scored by</h3>\n");
    if summary.checkpoints.is_empty() {
        html.push_str("<p class=\"note\">Nothing is scored yet: run <code>toxcli score</code>.</p>\n");
    } else {
        html.push_str(
            "<table id=\"checkpoints\">\n<tr><th>checkpoint SHA-256</th><th class=\"number\">texts</th>\
             <th>first scored (UTC)</th><th>last scored (UTC)</th></tr>\n",
        );
        for used in &summary.checkpoints {
            let unknown = "not recorded";
            writeln!(
                html,
                "<tr><td><code>{}</code></td><td class=\"number\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(used.checkpoint_sha256.as_deref().unwrap_or("not recorded (the Python pipeline's scores)")),
                thousands(used.n_texts),
                escape(used.first_scored_at.as_deref().unwrap_or(unknown)),
                escape(used.last_scored_at.as_deref().unwrap_or(unknown)),
            )?;
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n");

    // Histograms.
    write!(
        html,
        "<section id=\"histograms\">\n<h2>Scores per class</h2>\n\
         <p class=\"note\">Scored statuses per score bin of width {}, each status once.</p>\n<div class=\"grid\">\n",
        1.0 / data.query.bins as f64
    )?;
    for (class, bins) in table.columns.iter().zip(&summary.histograms) {
        writeln!(
            html,
            "<figure class=\"chart\" data-chart=\"histogram-{class}\">{}</figure>",
            charts::histogram(class, bins)?
        )?;
    }
    html.push_str("</div>\n</section>\n");

    // Per day.
    html.push_str("<section id=\"days\">\n<h2>Toxicity per day</h2>\n");
    let points: Vec<DayPoint> = data
        .days
        .iter()
        .filter_map(|row| {
            Some(DayPoint {
                day: charts::day_number(row.key.as_deref()?)?,
                n_statuses: row.n_statuses,
                mean_toxicity: row.averages.get(toxicity).copied().unwrap_or(0.0),
                share_toxic: row.share_toxic,
            })
        })
        .collect();
    if points.is_empty() {
        html.push_str("<p class=\"note\">No scored status has a <code>created_at</code>.</p>\n");
    } else {
        write!(
            html,
            "<p class=\"note\">UTC days of <code>created_at</code>, {} to {}.</p>\n\
             <figure class=\"chart\" data-chart=\"days\">{}</figure>\n",
            charts::day_label(points[0].day),
            charts::day_label(points[points.len() - 1].day),
            charts::days(&points, data.query.threshold)?
        )?;
    }
    if data.statuses_without_day > 0 {
        writeln!(
            html,
            "<p class=\"note\" id=\"without-day\">{} scored statuses have no <code>created_at</code> and are not in this chart.</p>",
            thousands(data.statuses_without_day)
        )?;
    }
    html.push_str("</section>\n");

    // Top users.
    write!(
        html,
        "<section id=\"top-users\">\n<h2>Most toxic users</h2>\n\
         <p class=\"note\">By mean toxicity, among users with at least {} scored statuses.</p>\n",
        data.query.min_statuses
    )?;
    if summary.top_users.is_empty() {
        html.push_str("<p class=\"note\">No user has that many scored statuses.</p>\n");
    } else {
        html.push_str(
            "<table id=\"top-users-table\">\n<tr><th class=\"number\">#</th><th>user id</th>\
             <th class=\"number\">statuses</th><th class=\"number\">mean toxicity</th>\
             <th class=\"number\">max toxicity</th><th class=\"number\">share toxic</th></tr>\n",
        );
        for (rank, user) in summary.top_users.iter().enumerate() {
            writeln!(
                html,
                "<tr><td class=\"number\">{}</td><td><code>{}</code></td><td class=\"number\">{}</td>\
                 <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
                rank + 1,
                escape(user.key.as_deref().unwrap_or("")),
                thousands(user.n_statuses),
                score(user.averages.get(toxicity).copied().unwrap_or(0.0)),
                score(user.max_toxicity),
                percent(user.share_toxic),
            )?;
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n");

    // Top texts.
    html.push_str("<section id=\"top-texts\">\n<h2>Most toxic texts</h2>\n");
    if summary.top_texts.is_empty() {
        html.push_str("<p class=\"note\">Nothing is scored yet.</p>\n");
    } else {
        html.push_str(
            "<table id=\"top-texts-table\">\n<tr><th class=\"number\">#</th><th class=\"number\">toxicity</th>\
             <th class=\"number\">statuses</th><th>text</th></tr>\n",
        );
        for (rank, text) in summary.top_texts.iter().enumerate() {
            writeln!(
                html,
                "<tr><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
                 <td class=\"text\">{}</td></tr>",
                rank + 1,
                score(text.scores.get(toxicity).copied().unwrap_or(0.0)),
                thousands(text.n_statuses),
                escape(&text.text),
            )?;
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n</body>\n</html>\n");
    Ok(html)
}

/// 1234567 as "1,234,567".
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(67_000_000), "67,000,000");
    }
}
