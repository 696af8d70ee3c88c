<?php
/*
 * saveLog.php: the delivered messages of a chat as HTML, oldest first.
 * Params: userId, strangerId. Rows of oldmsgs in which userId is the sender
 * or the recipient; those sent by userId are "You:", those sent by
 * strangerId "Stranger:" (a row sent by anyone else is left out). Messages
 * are printed raw, as the page shows them.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$userId = omegle_int('userId');
$strangerId = omegle_int('strangerId');

$rows = omegle_run(
    'SELECT userId, msg FROM oldmsgs WHERE userId = ? OR randomUserId = ?'
    . ' ORDER BY archivedDate, id',
    [$userId, $userId]
)->fetchAll();

$html = "<div style='padding:15px;' >";
foreach ($rows as $row) {
    $sender = (int) $row['userId'];
    if ($sender === $userId) {
        $html .= "<div class='logitem'><div class='youmsg'><span class='msgsource'>You:</span> "
            . $row['msg'] . '</div></div>';
    } elseif ($sender === $strangerId) {
        $html .= "<div class='logitem'><div class='strangermsg'><span class='msgsource'>Stranger:</span> "
            . $row['msg'] . '</div></div>';
    }
}
$html .= '</div>';

echo $html;
