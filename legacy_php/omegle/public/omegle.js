/*
 * Talk to a stranger: the page of the 2009 chat, as it talks to the server.
 *
 * Every request is a plain XMLHttpRequest: open("POST", url), send(null), the
 * parameters in a relative URL built by concatenation (the message too, not
 * encoded), no timeout, and no look at the status: whatever body comes back is
 * the answer. Answers are compared after trim(), which removes every space,
 * tab, CR, LF and form feed, wherever it is.
 *
 *   startChat.php                 -> our id
 *   randomChat.php?userId         -> the stranger's id, or 0: again 2 s later
 *   listenToReceive.php?userId    -> a message, nothing, or ||--noResult--||
 *                                    (the stranger left); again 2 s after each
 *   isTyping.php?strangerId       -> "typing" or nothing; again 2 s after each
 *   getNumberOfUsers.php          -> the number online; every 2 s from load
 *   typing.php / stopTyping.php   on a key press / when the box is emptied or
 *                                 loses focus
 *   sendMsg.php                   on Enter or Send; our line is drawn here
 *   leaveChat.php                 on Disconnect (after confirm()), on
 *                                 ||--noResult--|| and when the page unloads
 *   saveLog.php                   on "Save the log", shown in a new window
 *
 * The page's state is body[data-state]: idle, waiting, chatting, disconnected.
 */

var NO_RESULT = "||--noResult--||";
var RHYTHM_MS = 2000;

var userId = null;      // ours, from startChat.php
var strangerId = null;  // from randomChat.php
var left = true;        // leaveChat.php sent (or nothing to leave yet)
var chatNo = 0;         // the current chat; answers of an older one are dropped

function trim(s) {
  return s.replace(/[ \t\r\n\f]/g, "");
}

function el(id) {
  return document.getElementById(id);
}

/* POST url with an empty body; done(responseText) when it ends, any status. */
function post(url, done) {
  var xhr = new XMLHttpRequest();
  xhr.onreadystatechange = function () {
    if (xhr.readyState === 4 && done) {
      done(xhr.responseText);
    }
  };
  xhr.open("POST", url);
  xhr.send(null);
}

function state() {
  return document.body.getAttribute("data-state");
}

function setState(name, text) {
  document.body.setAttribute("data-state", name);
  el("status").innerHTML = text;
  var chatting = name === "chatting";
  el("msg").disabled = !chatting;
  el("send").disabled = !chatting;
  if (!chatting) {
    el("typing").style.visibility = "hidden";
  }
}

function addLine(cls, source, text) {
  var item = document.createElement("div");
  item.className = "logitem";
  item.innerHTML = "<div class='" + cls + "'><span class='msgsource'>" + source + "</span> " + text + "</div>";
  var log = el("log");
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
}

/* ---------------------------------------------------------------- */
/* A chat                                                            */
/* ---------------------------------------------------------------- */

function startChat() {
  var chat = ++chatNo;
  userId = null;
  strangerId = null;
  left = false;
  el("log").innerHTML = "";
  document.body.className = "";
  setState("waiting", "Looking for someone you can chat with...");
  post("startChat.php", function (text) {
    var id = trim(text);
    if (!current(chat)) {
      // Left (or started again) before the id came: that user leaves too.
      post("leaveChat.php?userId=" + id);
      return;
    }
    userId = id;
    randomChat(chat);
  });
}

function current(chat) {
  return chat === chatNo && !left;
}

function randomChat(chat) {
  post("randomChat.php?userId=" + userId, function (text) {
    if (!current(chat)) {
      return;
    }
    var id = trim(text);
    if (id === "0" || id === "") {
      setTimeout(function () {
        if (current(chat)) {
          randomChat(chat);
        }
      }, RHYTHM_MS);
      return;
    }
    strangerId = id;
    document.body.className = "paired";
    setState("chatting", "You're now chatting with a random stranger. Say hi!");
    el("msg").focus();
    listen(chat);
    isTyping(chat);
  });
}

function listen(chat) {
  post("listenToReceive.php?userId=" + userId, function (text) {
    if (!current(chat)) {
      return;
    }
    var t = trim(text);
    if (t === NO_RESULT) {
      leave();
      setState("disconnected", "Stranger has disconnected.");
      return;
    }
    if (t !== "") {
      addLine("strangermsg", "Stranger:", text);
    }
    setTimeout(function () {
      if (current(chat)) {
        listen(chat);
      }
    }, RHYTHM_MS);
  });
}

function isTyping(chat) {
  post("isTyping.php?strangerId=" + strangerId, function (text) {
    if (!current(chat)) {
      return;
    }
    el("typing").style.visibility = trim(text) === "typing" ? "visible" : "hidden";
    setTimeout(function () {
      if (current(chat)) {
        isTyping(chat);
      }
    }, RHYTHM_MS);
  });
}

function leave() {
  if (!left && userId !== null) {
    post("leaveChat.php?userId=" + userId);
  }
  left = true;
}

function disconnect() {
  if (!confirm("Are you sure you want to leave this chat?")) {
    return;
  }
  leave();
  setState("disconnected", "You have disconnected.");
}

/* ---------------------------------------------------------------- */
/* Typing and sending                                                */
/* ---------------------------------------------------------------- */

function sendMessage() {
  var box = el("msg");
  var text = box.value;
  if (state() !== "chatting" || trim(text) === "") {
    return;
  }
  post("sendMsg.php?userId=" + userId + "&strangerId=" + strangerId + "&msg=" + text);
  addLine("youmsg", "You:", text);
  box.value = "";
  stopTyping();
  box.focus();
}

function stopTyping() {
  if (state() === "chatting") {
    post("stopTyping.php?userId=" + userId);
  }
}

function keyPress(e) {
  e = e || window.event;
  if (e.keyCode === 13) {
    sendMessage();
    return false;
  }
  if (state() === "chatting") {
    post("typing.php?userId=" + userId);
  }
  return true;
}

function keyUp() {
  if (el("msg").value === "") {
    stopTyping();
  }
}

function saveLog() {
  // Opened now, inside the click, so that no popup blocker stops it.
  var win = window.open("", "_blank");
  post("saveLog.php?userId=" + userId + "&strangerId=" + strangerId, function (text) {
    if (win) {
      win.document.open();
      win.document.write("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Chat log</title></head><body>" + text + "</body></html>");
      win.document.close();
    }
  });
}

/* ---------------------------------------------------------------- */
/* The page                                                          */
/* ---------------------------------------------------------------- */

function countUsers() {
  post("getNumberOfUsers.php", function (text) {
    el("count").innerHTML = text;
  });
}

window.onload = function () {
  el("start").onclick = startChat;
  el("newchat").onclick = startChat;
  el("disconnect").onclick = disconnect;
  el("send").onclick = sendMessage;
  el("savelog").onclick = saveLog;
  el("msg").onkeypress = keyPress;
  el("msg").onkeyup = keyUp;
  el("msg").onblur = stopTyping;
  countUsers();
  setInterval(countUsers, RHYTHM_MS);
};

window.onbeforeunload = function () {
  leave();
};
